"""One rule for every callback: a user's mistake becomes a clear message in the page.

EngineError (bad upload, unknown class, missing model...) is shown as it is; any other
exception is a bug: it is logged with its traceback and the page says so in one line, and
the server keeps serving.
"""
from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from engine.errors import EngineError

log = logging.getLogger("app")


def _translate(e: Exception) -> gr.Error:
    if isinstance(e, EngineError):
        return gr.Error(str(e), print_exception=False)
    log.exception("callback failed")
    return gr.Error(f"internal error ({type(e).__name__}: {e}); the server log has the details",
                    print_exception=False)


def user_errors(fn):
    """Decorate a callback (plain function or generator) with the rule above."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:
                raise _translate(e) from None
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise _translate(e) from None
    return call
