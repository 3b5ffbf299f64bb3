"""The project's URLs plus two references: /bench/bare/, the floor a page is measured against (same gunicorn,
settings, middleware), and /bench/toy/, the issue's "toy page": one query and a 20-row template."""

from django.http import HttpResponse
from django.template import engines
from django.urls import path

from billing.models import Bill
from config.urls import urlpatterns as project_urlpatterns

TOY = engines["django"].from_string(
    "<!doctype html><html><body><table>{% for bill in bills %}"
    "<tr><td>{{ bill.number }}</td><td>{{ bill.due_date }}</td><td>{{ bill.total }}</td></tr>"
    "{% endfor %}</table></body></html>"
)


def bare(request):
    return HttpResponse(b"ok", content_type="text/plain")


def toy(request):
    return HttpResponse(TOY.render({"bills": Bill.objects.order_by("pk")[:20]}, request))


urlpatterns = [path("bench/bare/", bare), path("bench/toy/", toy), *project_urlpatterns]
