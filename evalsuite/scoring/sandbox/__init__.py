"""Where generated code runs: ``box`` (the scorer's side: ``Sandbox``, jobs, verifiers),
``zygote`` (the fork server), ``child`` (a program's confinement and harness), ``jail``
(the bubblewrap root), ``cgroup`` (memory and process limits per program), ``wire`` and
``wire_cost`` (what a program may report, and the bound on decoding it)."""
