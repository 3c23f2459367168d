from django.apps import AppConfig


class BalancingConfig(AppConfig):
    name = "balancing"

    def ready(self) -> None:
        from django.conf import settings

        if not settings.LINKRAY_EMBEDDED:
            # Scale-out: a transaction start or stop asks a Celery worker for a cycle at once
            # (the embedded loop registers its own listener when it starts).
            from balancing.tasks import request_cycle
            from gateway.runtime import runtime

            if request_cycle not in runtime.effect_listeners:
                runtime.effect_listeners.append(request_cycle)
