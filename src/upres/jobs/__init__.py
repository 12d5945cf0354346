"""Who runs tasks: the task table is the queue (store), workers claim with leases."""
