"""Icons, styles and the talk page, shipped as pplex_desktop.resources."""
