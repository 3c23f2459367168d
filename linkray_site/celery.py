"""Celery app for the scale-out configuration (REDIS_URL set).

On the embedded default nothing starts a worker: the same periodic work runs as asyncio
tasks inside `manage.py serve`.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkray_site.settings")

app = Celery("linkray")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
