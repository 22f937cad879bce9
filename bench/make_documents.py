"""Writes larger Office and PDF documents for `extract_bench` (not committed):
3000 DOCX paragraphs, a 20,000-row XLSX, 200 PPTX slides with notes, a 50-page PDF.

    pip install python-docx openpyxl python-pptx reportlab
    python bench/make_documents.py OUT_DIR
"""

import os
import sys

import docx
import openpyxl
import pptx
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
para = ("Tributary ingests documents from file shares and SharePoint into object storage, "
        "deduplicated, and makes them searchable by meaning.")
d = docx.Document()
for i in range(3000):
    if i % 50 == 0:
        d.add_heading(f"Chapter {i // 50}", level=1)
    d.add_paragraph(f"{i}. {para}")
d.save(os.path.join(out, "large.docx"))
wb = openpyxl.Workbook()
ws = wb.active
for i in range(20000):
    ws.append([i, "north", f"widget {i}", i * 7.5])
wb.save(os.path.join(out, "large.xlsx"))
p = pptx.Presentation()
for i in range(200):
    s = p.slides.add_slide(p.slide_layouts[1])
    s.shapes.title.text = f"Slide {i}"
    s.placeholders[1].text = para
    s.notes_slide.notes_text_frame.text = f"Speaker notes {i}: {para}"
p.save(os.path.join(out, "large.pptx"))
c = canvas.Canvas(os.path.join(out, "large.pdf"), pagesize=A4)
for page in range(50):
    for line in range(45):
        c.drawString(40, 800 - line * 17, f"{page}.{line} {para[:90]}")
    c.showPage()
c.save()
