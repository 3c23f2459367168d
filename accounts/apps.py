from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and API tokens"

    def ready(self) -> None:
        from accounts import login  # noqa: F401  (connects the login audit and throttle receivers)
