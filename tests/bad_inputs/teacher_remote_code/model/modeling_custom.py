from pathlib import Path
Path(__file__).with_name('RAN').write_text('remote code ran')
