"""README.md from nbs/index.ipynb, as nbdev_readme renders it (that needs Quarto, which is not installable here):
markdown cells as they are, consecutive code cells in one python block.  python .ci/readme.py nbs/index.ipynb > README.md"""
import json, sys
nb = json.load(open(sys.argv[1]))
out, code = [], []
def flush():
    if code: out.append("```python\n" + "\n\n".join(code) + "\n```"); code.clear()
for c in nb["cells"]:
    src = "".join(c["source"]).strip("\n")
    if c["cell_type"] == "markdown": flush(); out.append(src)
    elif src and not src.startswith("#| hide"): code.append(src)
flush()
text = out[0] + "\n\n\n" + "\n\n".join(out[1:])  # nbdev leaves a blank line after the title cell
print(text)
