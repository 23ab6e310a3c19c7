"""The admin web dashboard: a single page at ``/admin`` that drives the admin API.

The page is static HTML, CSS and JavaScript shipped in ``static/``; it holds no secret of
its own and talks to ``/api/admin/...`` with the session cookie that signing in sets.
"""
