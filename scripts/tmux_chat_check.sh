#!/usr/bin/env bash
# Drive `spikemerge chat` in tmux as a person would, with no planner key, and print each screen.
# Usage: scripts/tmux_chat_check.sh ANALYZER_FOLDER WORK_DIR PYTHON  (PYTHON: the interpreter spikemerge is installed in)
# With VLM_URL set (an OpenAI-compatible endpoint, e.g. a local fake server), /judge uses the vision
# judge there and the check presses Ctrl-C in the middle of it: the command stops, the chat goes on.
set -euo pipefail
analyzer=$1; work=$2; python=$3; session=smchat$$
mkdir -p "$work"
wait_for() {  # wait until the pane shows $1 (at most $2 seconds)
  for _ in $(seq 1 $(( $2 * 4 ))); do tmux capture-pane -p -S -300 -t "$session" | grep -q -- "$1" && return 0; sleep 0.25; done
  echo "timed out waiting for: $1" >&2; tmux capture-pane -p -S -300 -t "$session" >&2; return 1
}
judge_env=""; judge_arg=""
if [ -n "${VLM_URL:-}" ]; then
  judge_env="OPENAI_BASE_URL='$VLM_URL' OPENAI_API_KEY=sk-local-fake"; judge_arg="--judge-model openai:gpt-4o"
fi
trap 'tmux kill-session -t "$session" 2>/dev/null || true' EXIT
tmux new-session -d -s "$session" -x 140 -y 50 -c "$work" \
  "env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GOOGLE_API_KEY PYTHONPATH='${PYTHONPATH:-}' SPIKEMERGE_MODEL=anthropic:claude-sonnet-4-5 $judge_env \
   '$python' -m spikemerge chat '$analyzer' --out '$work/out' $judge_arg; echo CHAT-EXITED; sleep 30"
wait_for "you>" 90
tmux send-keys -t "$session" "/help" Enter; wait_for "/examples" 10
tmux send-keys -t "$session" "/find 0.8" Enter; wait_for "candidate groups" 30
tmux send-keys -t "$session" "/find 1.5" Enter; wait_for "must be between 0 and 1" 10
tmux send-keys -t "$session" "/undo" Enter; wait_for "nothing to undo" 10
if [ -n "${VLM_URL:-}" ]; then
  tmux send-keys -t "$session" "/render" Enter; wait_for "rendered" 120
  tmux send-keys -t "$session" "/judge" Enter; wait_for "Ctrl-C cancels" 30
  sleep 2; tmux send-keys -t "$session" C-c; wait_for "/judge cancelled" 30
  echo "--- after Ctrl-C in /judge"; tmux capture-pane -p -t "$session"; echo "-----"
fi
tmux send-keys -t "$session" "/judge" Enter; wait_for "verdicts" 180
tmux send-keys -t "$session" "/show 1" Enter; wait_for "verdict: " 10
tmux send-keys -t "$session" "merge duplicates conservatively" Enter; wait_for "use the slash commands" 20
tmux send-keys -t "$session" "/apply" Enter; wait_for "Apply these merges" 20
tmux send-keys -t "$session" "n" Enter; wait_for "nothing changed" 10
tmux send-keys -t "$session" "/quit" Enter; wait_for "CHAT-EXITED" 10
tmux capture-pane -p -S -300 -t "$session"
