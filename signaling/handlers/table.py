"""The one route table every handler module registers on."""

from signaling.routing import RouteTable

ROUTES = RouteTable()
