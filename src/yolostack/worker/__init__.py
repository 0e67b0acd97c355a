"""Background-work machinery: leases, queue workers, periodic tasks, the worker registry, job executors."""
