"""ssi interconnect lab: emulated clusters in network namespaces, sweeps,
JSON results, plots and a latency model. Entry point: scripts/lab."""
