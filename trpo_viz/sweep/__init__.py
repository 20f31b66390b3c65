"""Sweeps: a grid of TRPO settings × seeds, run as Ray tasks, summarised with uncertainty.

``grid``      parse and check a grid (keys, values, trial count) into a :class:`SweepSpec`
``stats``     interquartile mean and stratified-bootstrap confidence intervals (numpy)
``storage``   trials as stored runs in the run store, grouped by sweep id
``engine``    Ray: the connection (local by default, a cluster by address) and the driver
              that runs the trials and writes their records into the store
``results``   a stored sweep read back: trials, learning curves, per-setting summary
``export``    the summary as CSV and as one self-contained HTML file
``registry``  the process-wide owner of running sweeps (the app's pages only ask it)
``command``   the ``python -m trpo_viz sweep`` subcommand

Importing this package imports neither Ray nor TensorFlow.
"""
