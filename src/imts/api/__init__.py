"""The REST API (``/api/v1``): thin routes over the services, one error shape, a permission per route."""
