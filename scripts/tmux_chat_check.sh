#!/usr/bin/env bash
# Drive `spikemerge chat` in tmux as a person would, with no API key, and print each screen.
# Usage: scripts/tmux_chat_check.sh ANALYZER_FOLDER WORK_DIR PYTHON  (PYTHON: the interpreter spikemerge is installed in)
set -euo pipefail
analyzer=$1; work=$2; python=$3; session=smchat$$
mkdir -p "$work"
screen() { sleep "$1"; tmux capture-pane -p -t "$session"; echo "-----"; }
wait_for() {  # wait until the pane shows $1 (at most $2 seconds)
  for _ in $(seq 1 $(( $2 * 4 ))); do tmux capture-pane -p -t "$session" | grep -q -- "$1" && return 0; sleep 0.25; done
  echo "timed out waiting for: $1" >&2; tmux capture-pane -p -t "$session" >&2; return 1
}
trap 'tmux kill-session -t "$session" 2>/dev/null || true' EXIT
tmux new-session -d -s "$session" -x 140 -y 50 -c "$work" \
  "env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GOOGLE_API_KEY SPIKEMERGE_MODEL=openai:gpt-4o-mini \
   '$python' -m spikemerge chat '$analyzer' --out '$work/out'; echo CHAT-EXITED; sleep 30"
wait_for "you>" 90
tmux send-keys -t "$session" "/help" Enter; wait_for "/examples" 10
tmux send-keys -t "$session" "/find 0.8" Enter; wait_for "candidate groups" 30
tmux send-keys -t "$session" "/judge" Enter; wait_for "verdicts" 90
tmux send-keys -t "$session" "/show 1" Enter; wait_for "verdict: " 10
tmux send-keys -t "$session" "merge duplicates conservatively" Enter; wait_for "use the slash commands" 20
tmux send-keys -t "$session" "/apply" Enter; wait_for "Apply these merges" 20
tmux send-keys -t "$session" "n" Enter; wait_for "nothing changed" 10
tmux send-keys -t "$session" "/quit" Enter; wait_for "CHAT-EXITED" 10
tmux capture-pane -p -S -200 -t "$session"
