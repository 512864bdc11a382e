"""The Textual app: a thin view over one engine session (widgets post messages up; the
app changes the session and pushes state down)."""
