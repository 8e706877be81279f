"""Support code every stage shares: errors, input validation, clocks, queue types,
the router framework, the gateway, thread safety, and the choice of implementation.

None of it is a candidate's exercise: the candidate's modules (``balancer``,
``request_queue``, ``strategies``) import from here.
"""
