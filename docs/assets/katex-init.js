// Typeset the math that pymdownx.arithmatex wraps in \( \) and \[ \] (class "arithmatex"), with the vendored KaTeX.
function purepgTypeset() {
  document.querySelectorAll(".arithmatex").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\[", right: "\\]", display: true },
        { left: "\\(", right: "\\)", display: false },
      ],
      throwOnError: false,
    });
  });
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", purepgTypeset);
} else {
  purepgTypeset();
}
