"""The operator's I/O: caches fed by watches, the wake-up queue, the API calls a plan asks for, kopf's
wiring, the active replica, metrics, the API client and its rate limit."""
