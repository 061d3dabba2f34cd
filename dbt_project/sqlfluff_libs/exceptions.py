"""dbt's ``exceptions`` context for sqlfluff's jinja templater (the window macro raises with it)."""


def raise_compiler_error(message: str) -> None:
    raise RuntimeError(message)
