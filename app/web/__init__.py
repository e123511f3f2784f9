"""The web page for people: static HTML/JS/CSS served by the API, and the one read-only
endpoint the slice viewer needs that the JSON API lacks (a series' image as NIfTI)."""
