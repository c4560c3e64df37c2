from lit_mrl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
