"""The REST API (tradewarden.web) over a real paper deployment's ledger."""

from api_support import TOKEN


def test_status(reader):
    r = reader.get("/api/status")
    assert r.status_code == 200, r.text
    assert r.json()["deployments"][0]["name"] == "desk"
    assert TOKEN
