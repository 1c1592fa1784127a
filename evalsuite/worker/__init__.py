"""The queue worker: ``loop`` claims jobs and keeps their leases, ``job`` runs one job's
evaluation in a child process group, ``submit`` registers a checkpoint the way a training
job would, ``cli`` mounts ``evalsuite worker`` and ``evalsuite submit``."""
