"""The one thing pyproject.toml cannot say: resources/ sits at the top of the repository (the
design card's layout) and ships inside the package as ``pplex_desktop.resources``, so
importlib.resources finds it in a wheel and in an editable install alike."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["pplex_desktop*"]), "pplex_desktop.resources"],
    package_dir={"pplex_desktop.resources": "resources"},
)
