"""data_proxy: what the flyte SDK needs around a run's data. Cluster selection, signed uploads,
offloaded inputs, and an action's inputs and outputs."""
