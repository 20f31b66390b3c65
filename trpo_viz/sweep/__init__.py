"""Sweeps: a grid of TRPO settings × seeds, run as Ray tasks, summarised with uncertainty.

``grid``      parse and check a grid (keys, values, trial count) into a :class:`SweepSpec`
``stats``     interquartile mean and stratified-bootstrap confidence intervals (numpy)
``storage``   trials as stored runs in the run store, grouped by sweep id
``connection`` the process's Ray connection (local by default, a cluster by address)
``engine``    the trial task and the driver that runs the trials on Ray and writes their
              records into the store
``runner``    one sweep from plan to stored results (check, connect, store, drive)
``results``   a stored sweep read back: trials, learning curves, per-setting summary
``figures``   Plotly figures and tables of a sweep's results
``export``    the summary as CSV and as one self-contained HTML file
``registry``  the process-wide owner of running sweeps (the app's pages only ask it)
``command``   the ``python -m trpo_viz sweep`` subcommand

Importing this package imports neither Ray nor TensorFlow.
"""
