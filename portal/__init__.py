"""The portal: a local web app over one repository (portal layer, beside the CLI).

`vdedup portal` opens the repository once (the password never leaves this process), binds
127.0.0.1 and prints a one-time link. Pages are rendered on the server from Jinja templates;
a little plain JavaScript polls job progress. Like the CLI, the portal uses the engine
(vdedup.engine, vdedup.assets) and shows what it returns; it never imports the CLI.

    server.py     binding 127.0.0.1 and running uvicorn
    state.py      the open repository, sessions, pending connections, the one-at-a-time work lock
    security.py   the token exchange, session cookie, CSRF and origin checks (ASGI middleware)
    app.py        the Starlette application and its routes
    web.py        rendering, the shape of every route, error pages, template filters
    jobs.py       background jobs (backup, restore, check) and their progress
    auditing.py   audit entries of portal operations
    pages/        one module per group of pages
    plot.py       the records / bytes history as inline SVG
    schedule.py   the next run of the nightly systemd timer, if any
"""
