"""The service layer's glue: start-up (infrastructure once, crash recovery, job kinds) and contexts.

Surfaces (the CLI, the API, job workers) call ``startup.start`` once per process and build a
``Context`` per call; every operation is a service function of a domain package taking that context.
"""
