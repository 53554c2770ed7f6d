// Verify Client Federation panel (templates/settings/federation.html). An external file because
// the Content-Security-Policy forbids inline scripts. Without it the panel still works: the
// read-only text areas can be selected and copied by hand, and the export can be pasted.
(function () {
  'use strict';

  // Buttons stay hidden unless this script runs, so nobody sees a button that does nothing.
  function reveal() {
    document.querySelectorAll('[data-copy-target], [data-file-into]').forEach(function (element) {
      element.hidden = false;
    });
  }

  function copyByHand(source) {
    source.focus();
    source.select();
    try {
      return document.execCommand('copy');
    } catch (error) {
      return false;
    }
  }

  function announce(button, text) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = text;
    window.setTimeout(function () { button.textContent = label; }, 2000);
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy-target]');
    if (!button) { return; }
    var source = document.getElementById(button.dataset.copyTarget);
    if (!source) { return; }
    var text = source.value;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { announce(button, 'Copied'); },
        function () { announce(button, copyByHand(source) ? 'Copied' : 'Select and copy by hand'); }
      );
    } else {
      announce(button, copyByHand(source) ? 'Copied' : 'Select and copy by hand');
    }
  });

  // "Upload": read the chosen file into the text area. FileReader honours a byte-order mark,
  // so the UTF-16 files Windows PowerShell writes with `>` read correctly.
  document.addEventListener('change', function (event) {
    var input = event.target;
    if (!input.matches || !input.matches('[data-file-into]') || !input.files || !input.files[0]) { return; }
    var target = document.getElementById(input.dataset.fileInto);
    if (!target) { return; }
    var reader = new FileReader();
    reader.onload = function () { target.value = reader.result; };
    reader.readAsText(input.files[0]);
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', reveal);
  } else {
    reveal();
  }
})();
