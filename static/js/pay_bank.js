/* Paying from a bank account on the payment screen (templates/billing/pay/bank_debit.html).
 *
 * Without this script both the card and the bank parts show, and the bank button posts the whole form to the
 * server, which answers with the receipt. With it:
 *   1. the "How do you want to pay?" choice shows either the card part or the bank part (CSS on data-pay-method);
 *   2. the bank button posts the form in the background and reads JSON: field errors go next to their fields
 *      (aria-invalid, aria-describedby), other errors into the alert; success opens the receipt.
 * The IBAN goes only to our server, over HTTPS, and from there to the payment processor; it is not card data.
 */
(function () {
  "use strict";

  var form = document.getElementById("payment-form");
  var section = document.getElementById("bank-debit");
  var button = document.getElementById("bank-pay-button");
  if (!form || !section || !button) {
    return;
  }
  var progress = document.getElementById("bank-progress");
  var errorBox = document.getElementById("bank-error");
  var configNode = document.getElementById("pay-config");
  var text = configNode ? JSON.parse(configNode.textContent).messages || {} : {};

  function choose() {
    var checked = form.querySelector('input[name="pay_method"]:checked');
    form.setAttribute("data-pay-method", checked ? checked.value : "card");
  }
  form.querySelectorAll('input[name="pay_method"]').forEach(function (radio) {
    radio.addEventListener("change", choose);
  });
  choose();

  function clearFieldErrors() {
    form.querySelectorAll("[data-bank-error]").forEach(function (node) {
      node.remove();
    });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
  }

  function fieldError(name, message) {
    var input = form.querySelector('[name="' + name + '"]');
    if (!input || input.type === "hidden") {
      return false;
    }
    var note = document.createElement("p");
    note.className = "field-error";
    note.id = "id_" + name + "-bank-error";
    note.setAttribute("data-bank-error", "");
    note.textContent = message;
    input.parentNode.insertBefore(note, input);
    input.setAttribute("aria-invalid", "true");
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
      return id && id.indexOf("-bank-error") === -1;
    });
    described.unshift(note.id);
    input.setAttribute("aria-describedby", described.join(" "));
    return true;
  }

  function fail(message) {
    progress.textContent = "";
    errorBox.textContent = message;
    errorBox.hidden = !message;
    button.disabled = false;
  }

  button.addEventListener("click", function (event) {
    event.preventDefault();
    clearFieldErrors();
    fail("");
    button.disabled = true;
    progress.textContent = text.working || "";
    fetch(button.getAttribute("formaction"), {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          return { ok: response.ok, answer: answer };
        });
      })
      .then(function (result) {
        var answer = result.answer;
        if (result.ok && answer.next) {
          progress.textContent = text.paid || "";
          window.location.assign(answer.next);
          return;
        }
        if (answer.redirect) {
          window.location.assign(answer.redirect);
          return;
        }
        var placed = false;
        Object.keys(answer.errors || {}).forEach(function (name) {
          placed = fieldError(name, answer.errors[name]) || placed;
        });
        fail(answer.error || "");
        var first = form.querySelector('[aria-invalid="true"]');
        if (placed && first) {
          first.focus();
        } else {
          errorBox.focus();
        }
      })
      .catch(function () {
        fail(text.network || "");
      });
  });
})();
