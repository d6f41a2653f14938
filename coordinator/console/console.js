// The console's only script, and it is optional: "Copy" buttons copy the field they name.
document.addEventListener('click', function (ev) {
  var b = ev.target.closest('[data-copy]');
  if (!b) { return; }
  var field = document.getElementById(b.getAttribute('data-copy'));
  if (!field) { return; }
  field.select();
  var done = function () { b.textContent = 'Copied'; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, function () {});
  } else if (document.execCommand('copy')) {
    done();
  }
});
