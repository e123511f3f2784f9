"""The service as a whole: the harness that runs it (API, workers, databases) for every test folder, and
the tests of the whole (``lrc serve``, process boundaries, the compose file, scaled mode)."""
