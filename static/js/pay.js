/* The card step of the payment screen (templates/billing/pay_account.html).
 *
 * The server decides what is charged. This script only:
 *   1. mounts stripe.js's Card Element, so the card is typed into Stripe's field and never reaches our server;
 *   2. on "Pay", posts the payer's choices (not an amount) to start the payment: the server re-quotes and answers
 *      with the intent's client secret and the total it will charge;
 *   3. asks stripe.js for a payment method id for the card and has the server confirm the intent with that id;
 *   4. runs 3-D Secure in the page when the bank asks (stripe.confirmCardPayment with the client secret);
 *   5. goes to the return address, which records the result and opens the receipt.
 * A decline keeps the form: the message is read out, and the next "Pay" starts a fresh intent on the same payment.
 */
(function () {
  "use strict";

  var configNode = document.getElementById("pay-config");
  var form = document.getElementById("payment-form");
  var mountPoint = document.getElementById("card-element");
  if (!configNode || !form || !mountPoint) {
    return;
  }
  var config = JSON.parse(configNode.textContent);
  var text = config.messages;
  var payButton = document.getElementById("pay-button");
  var progress = document.getElementById("pay-progress");
  var errorBox = document.getElementById("pay-error");

  function say(message) {
    if (progress) {
      progress.textContent = message || "";
    }
  }

  function fail(message) {
    say("");
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }
  }

  function cardUnavailable() {
    var notice = document.createElement("p");
    notice.className = "form-alert";
    notice.setAttribute("role", "alert");
    notice.textContent = text.unavailable;
    mountPoint.replaceChildren(notice);
    if (payButton) {
      payButton.hidden = true;
    }
  }

  if (typeof window.Stripe !== "function" || !config.publishableKey) {
    cardUnavailable();
    return;
  }

  var stripe = window.Stripe(config.publishableKey);
  var card = stripe.elements().create("card");
  card.mount(mountPoint);
  // Real Stripe mounts a titled iframe with its own labelled fields. localstripe's stand-in mounts bare inputs with
  // only a placeholder; give those an accessible name so the page stays usable with a screen reader in tests too.
  Array.prototype.forEach.call(mountPoint.querySelectorAll("input:not([aria-label])"), function (input) {
    input.setAttribute("aria-label", input.getAttribute("placeholder") || "card");
    input.setAttribute("autocomplete", "off");
  });
  card.on("change", function (event) {
    fail(event && event.error ? event.error.message : "");
  });

  // The quote on the page is what the payer agreed to. If they change the amount or the tip, they must see the new
  // total (Update the total) before paying.
  var stale = false;
  Array.prototype.forEach.call(
    form.querySelectorAll("[name=amount_choice], [name=other_amount], [name=tip_percent]"),
    function (input) {
      input.addEventListener("input", markStale);
      input.addEventListener("change", markStale);
    }
  );
  function markStale() {
    stale = true;
    if (payButton) {
      payButton.disabled = true;
    }
    fail(text.changed);
  }

  if (!payButton || config.quoteTotal === null) {
    return;
  }
  payButton.hidden = false;

  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var busy = false;

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    }).then(function (response) {
      return response.json().then(function (data) {
        data.httpStatus = response.status;
        return data;
      });
    });
  }

  function fields(values) {
    var body = new FormData();
    Object.keys(values).forEach(function (key) {
      body.append(key, values[key]);
    });
    return body;
  }

  function payerMessage(error) {
    // stripe.js errors about the card (type card_error / validation_error) are written for payers; anything else
    // (a network failure, a script error) gets our plain message.
    if (error && (error.type === "card_error" || error.type === "validation_error" || error.code) && error.message) {
      return error.message;
    }
    return text.checkCard;
  }

  function paymentMethodId(email) {
    // Real stripe.js: a PaymentMethod from the Card Element. localstripe's stand-in has no createPaymentMethod (it
    // returns nothing); there a token's card id works as the payment method. Either way only an id reaches us.
    var created = typeof stripe.createPaymentMethod === "function"
      ? stripe.createPaymentMethod({ type: "card", card: card, billing_details: { email: email } })
      : Promise.resolve(undefined);
    return Promise.resolve(created).then(function (result) {
      if (result && result.error) {
        return { error: result.error };
      }
      if (result && result.paymentMethod) {
        return { id: result.paymentMethod.id };
      }
      return stripe.createToken(card).then(function (tokenResult) {
        if (!tokenResult || tokenResult.error || !tokenResult.token) {
          return { error: tokenResult ? tokenResult.error : null };
        }
        return { id: tokenResult.token.card.id };
      });
    });
  }

  function offerReload() {
    if (!errorBox) {
      return;
    }
    var reload = document.createElement("button");
    reload.type = "button";
    reload.className = "button";
    reload.textContent = text.reload;
    reload.addEventListener("click", function () {
      window.location.reload();
    });
    errorBox.appendChild(document.createTextNode(" "));
    errorBox.appendChild(reload);
    reload.focus();
  }

  function finish(answer, intentId) {
    if (answer.status === "succeeded" || answer.status === "processing") {
      say(text.paid);
      window.location.assign(answer.next || config.returnUrl + "?payment_intent=" + encodeURIComponent(intentId));
      return true;
    }
    if (answer.status === "balance_changed") {
      // Less is owed now than this page quoted (autopay or another payment came in): nothing was charged, and this
      // page's total is out of date, so Pay stays off until the payer reloads.
      stale = true;
      fail(answer.message);
      offerReload();
      return false;
    }
    if (answer.error || answer.status === "declined" || answer.status === "failed") {
      fail(answer.error || answer.message || text.checkCard);
      if (answer.redirect) {
        window.location.assign(answer.redirect);
        return true;
      }
      return false;
    }
    fail(text.checkCard);
    return false;
  }

  function pay() {
    if (busy || stale) {
      return;
    }
    busy = true;
    payButton.disabled = true;
    fail("");
    say(text.working);
    var intentId = null;
    var navigating = false;

    post(config.startUrl, new FormData(form))
      .then(function (started) {
        if (started.error) {
          throw { payer: started.error, redirect: started.redirect };
        }
        if (started.total !== config.quoteTotal) {
          throw { payer: text.changed };
        }
        intentId = started.paymentIntent;
        var email = (form.querySelector("[name=receipt_email]") || {}).value || "";
        // A saved card (signed-in payers) is named by our own row id; otherwise stripe.js makes an id for the new card.
        var saved = form.querySelector("[name=saved_card]:checked");
        var chosen = saved && saved.value ? Promise.resolve({ saved: saved.value }) : paymentMethodId(email);
        return chosen.then(function (method) {
          if (method.error !== undefined) {
            throw { payer: payerMessage(method.error) };
          }
          var choice = method.saved ? { saved_card: method.saved } : { payment_method: method.id };
          choice.payment_intent = intentId;
          return post(config.confirmUrl, fields(choice));
        }).then(function (answer) {
          if (answer.status !== "requires_action") {
            return answer;
          }
          say(text.authenticating);
          // The server confirmed the intent; stripe.js only runs the bank's check. Current stripe.js calls that
          // handleNextAction; localstripe's stand-in (and older stripe.js) does it in confirmCardPayment.
          var authenticate = typeof stripe.handleNextAction === "function"
            ? stripe.handleNextAction({ clientSecret: answer.clientSecret })
            : stripe.confirmCardPayment(answer.clientSecret);
          return Promise.resolve(authenticate).then(function () {
            // Whatever the bank said, ask our server: it records the intent's state and answers with the next step.
            return post(config.confirmUrl, fields({ payment_intent: intentId }));
          });
        });
      })
      .then(function (answer) {
        navigating = finish(answer, intentId);
      })
      .catch(function (problem) {
        fail(problem && problem.payer ? problem.payer : text.network);
        if (problem && problem.redirect) {
          navigating = true;
          window.location.assign(problem.redirect);
        }
      })
      .then(function () {
        busy = false;
        if (!navigating) {
          payButton.disabled = stale;
          if (!errorBox || errorBox.hidden) {
            say("");
          }
        }
      });
  }

  payButton.addEventListener("click", pay);
})();
