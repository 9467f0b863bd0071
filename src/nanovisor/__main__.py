from nanovisor.cli.main import main

raise SystemExit(main())
