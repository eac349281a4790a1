# Sphinx configuration of the lvdiff.thin documentation site, built by `make docs`
# (docs/site-src/build.sh). Started from `antsibull-docs sphinx-init --use-current`.

project = 'lvdiff.thin'
copyright = 'lvdiff.thin contributors'

title = 'lvdiff.thin documentation'
html_short_title = 'lvdiff.thin'

# sphinx_antsibull_ext renders the module pages that antsibull-docs generates;
# myst_parser reads the guides, written in Markdown.
extensions = ['sphinx_antsibull_ext', 'myst_parser']

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
html_title = 'lvdiff.thin'
html_theme_options = {
    'display_version': False,
    'titles_only': False,
}
display_version = False

html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# The build runs offline: no intersphinx inventories. References to ansible-core's pages in
# the generated module docs (attributes, FQCN links) stay plain text instead of links.
intersphinx_mapping = {}

default_role = 'any'
nitpicky = False
