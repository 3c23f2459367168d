from django.apps import AppConfig


class BalancingConfig(AppConfig):
    name = "balancing"
