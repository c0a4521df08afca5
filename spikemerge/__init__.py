"""spikemerge: decide which spike-sorted units are the same neuron, and merge them."""

__version__ = "0.1.0"
