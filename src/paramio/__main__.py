from paramio.cli.main import main

raise SystemExit(main())
