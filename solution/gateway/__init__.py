"""Stage 8: the balancer on the wire.

* :mod:`solution.gateway.inference_server`: OpenAI-compatible inference servers that time their answers with the
  simulator's continuous-batching model (``python -m solution.gateway.inference_server``).
* :mod:`solution.gateway.faults`: the faults a server can be told to play (``POST /admin/fault``).
* :mod:`solution.gateway.procs`: starting and always stopping the processes (servers, gateways, HAProxy).

Submodules are imported explicitly (``from solution.gateway.procs import start_fleet``): importing this package
imports nothing, so ``python -m solution.gateway`` and the servers start fast.
"""
