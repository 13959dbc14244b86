// mlwarden review console: the only script. Asks for confirmation on destructive buttons
// (data-confirm); no inline handlers, so the Content-Security-Policy can forbid them.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});
