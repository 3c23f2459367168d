from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from gateway.models import Charger


@login_required
def dashboard(request):
    return render(request, "gateway/dashboard.html", {"chargers": Charger.objects.all()})
