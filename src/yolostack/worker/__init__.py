"""Job infrastructure: periodic tasks now; queues and executors come with the jobs issue."""
