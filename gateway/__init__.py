"""The DICOM gateway (``lrc gateway``): a PACS sends series here, results go back to the PACS.

Data flow: :mod:`gateway.scp` receives instances (C-ECHO, C-STORE) and :mod:`gateway.inbox` writes
them durably, grouped by series; a series quiet for ``series_timeout`` seconds is complete and is
routed by :mod:`gateway.rules`; :mod:`gateway.outbox` persists every step still to do (upload,
segment, wait, deliver) and :mod:`gateway.pipeline` carries them out through :mod:`gateway.api_client`
(the service's REST API over HTTP) and :mod:`gateway.delivery` (C-STORE or STOW-RS).

The gateway is a light process: it imports neither torch nor the service's ``app`` package.
"""
