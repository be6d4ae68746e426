"""The AWS clients beneath the table and the functions.

``http``       signed HTTP for DynamoDB, S3 and EKS in botocore's calling convention (cold starts)
``clients``    botocore's clients for the services off the hot paths (Lambda, Scheduler, Logs)
``blobs``      the data bucket (run inputs)
``log_store``  the task pods' CloudWatch Logs
``wake``       waking an idle status-mirror shard (an asynchronous Lambda invoke)
"""
