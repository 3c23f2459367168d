"""Login for the page and the admin: throttled per client address, every attempt audited.

The failures live in the cache (process memory embedded, Redis in scale-out, so every process
counts the same failures). While an address must wait, its attempts are answered 429 without
checking the password, and `login_throttled address=...` is logged."""

from __future__ import annotations

import functools
import logging
import math
import time

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.shortcuts import render

from accounts.access import client_address, principal_for_user
from accounts.throttle import ThrottlePolicy, after_failure, wait_s
from audit.services import record

logger = logging.getLogger(__name__)
_KEY = "login-failures:"


def policy() -> ThrottlePolicy:
    return ThrottlePolicy(
        max_failures=settings.LINKRAY_LOGIN_MAX_FAILURES,
        window_s=settings.LINKRAY_LOGIN_WINDOW_S,
        base_delay_s=settings.LINKRAY_LOGIN_DELAY_S,
        max_delay_s=settings.LINKRAY_LOGIN_MAX_DELAY_S,
    )


def _failures(address: str) -> tuple[float, ...]:
    stored = cache.get(_KEY + address)
    try:
        return tuple(float(at) for at in stored or ())
    except (TypeError, ValueError):
        return ()  # a foreign value under our key: start over rather than crash the login


def login_wait_s(address: str, now: float | None = None) -> float:
    return wait_s(_failures(address), time.time() if now is None else now, policy())


def throttled(view):
    """Wrap a login view: a POST from a locked address gets 429 and the login form."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            address = client_address(request)
            waiting_s = login_wait_s(address)
            if waiting_s > 0:
                seconds = math.ceil(waiting_s)
                logger.warning("login_throttled address=%s wait_s=%d", address, seconds)
                record(
                    None,
                    "login.throttled",
                    f"user:{str(request.POST.get('username', ''))[:150]}",
                    outcome=f"locked for {seconds} s",
                    address=address,
                )
                response = render(
                    request,
                    "registration/login.html",
                    {"throttled_s": seconds, "form": None, "next": request.POST.get("next", "")},
                    status=429,
                )
                response["Retry-After"] = str(seconds)
                return response
        return view(request, *args, **kwargs)

    return wrapper


page_login = throttled(auth_views.LoginView.as_view())


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    if request is None:
        return  # authenticate() outside a request (tests, scripts): nothing to count
    address = client_address(request)
    now = time.time()
    failures = after_failure(_failures(address), now, policy())
    cache.set(_KEY + address, list(failures), timeout=int(policy().window_s + policy().max_delay_s))
    username = str(credentials.get("username", ""))[:150]
    logger.info("login_failed address=%s username=%s failures=%d", address, username, len(failures))
    record(None, "login.failed", f"user:{username}", outcome=f"{len(failures)} recent failures", address=address)


@receiver(user_logged_in)
def _logged_in(sender, request=None, user=None, **kwargs):
    if request is None or user is None:
        return
    address = client_address(request)
    cache.delete(_KEY + address)
    # force_login (tests) and the login form both land here; the actor is the person.
    principal = principal_for_user(user, address)
    record(principal, "login.succeeded", f"user:{user.get_username()}", address=address)
