try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C before landscape.cli installs its own start-up handler: still one line
    import sys

    sys.stderr.write("error: interrupted\n")
    raise SystemExit(130) from None

main(prog_name="landscape")
