from trpo_viz.cli import main

raise SystemExit(main())
