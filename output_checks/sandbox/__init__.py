"""Where researcher bytes are parsed: the checks and the reviewer previews run in a child process, never in the
airlock's own. As root the child is a bubblewrap sandbox (no network, nothing of the host but the read-only system
and Python environment, the request's files read-only, the project's keyed identifier index over stdin) running as
the airlock's own unprivileged account; otherwise a plain subprocess with the same limits. The parent sends the job
as JSON and reads JSON back; a crash, a hang or a memory blow-up in the child is a `review`, never a failure of the
service (docs/explanation/airlock-checks.md).

`runner` is the parent side (import it from there: this package's import stays light, since the child is in it too),
built from `confinement` (bubblewrap and the checks account), `limits`, `staging` (the files a child reads), `process`
(one running child) and `warm` (the child started ahead); `child` is what runs inside; `mocking` holds misbehaving
checks for the robustness tests."""
