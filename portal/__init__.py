"""The portal: a local web app over one repository (portal layer, beside the CLI).

`vdedup portal` opens the repository once (the password never leaves this process), binds
127.0.0.1 and prints a one-time link. Pages are rendered on the server from Jinja templates;
a little plain JavaScript polls job progress. Like the CLI, the portal uses the engine
(vdedup.engine, vdedup.assets) and shows what it returns; it never imports the CLI.

    state.py      the open repository, sessions, the one-at-a-time work lock
    security.py   the token exchange, session cookie, CSRF and origin checks (ASGI middleware)
    jobs.py       background jobs (backup, restore, check) and their progress
    app.py        the Starlette application: routes, rendering, error pages
    pages/        one module per page group
    plot.py       the records / bytes history as inline SVG
"""
