"""The DynamoDB data access: one table, a run per partition, conditional writes, never a scan.

``records``       the Action and Event records and their item mapping (keys, the run index)
``actions``       the actions' store: creates, children, the guarded status update, aborts, reads
``run_index``     ListRuns' reads of the sharded run index
``registry``      the registry's items (tasks, triggers, projects) beside the runs
``tasks``         deployed task versions
``projects``      projects
``leases``        the status mirror's per-shard leases and checkpoints
``attempt_logs``  an attempt's log context, from the events the data plane recorded for it
"""
