//! Ownership on UPDATE and DELETE: who may change or delete an Environment
//! ([`Access`]), decided by [`validate`].

use kube::core::admission::Operation;

use super::response::{Decision, Refusal, allow, deny};
use super::review::{Review, User};
use super::{annotation, check_kind, object_name, username};

use ephemeral_core::expand::OWNER_ANNOTATION;

/// Who may update or delete Environments that are not theirs.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Members of any of these groups are admins.
    pub admin_groups: Vec<String>,
    /// The controller's own service account, always an admin.
    pub controller_service_account: String,
}

impl Access {
    /// Whether `user` is an admin: the controller's service account, or a
    /// member of one of the admin groups.
    pub fn is_admin(&self, user: &User<'_>) -> bool {
        if user.username.as_deref() == Some(self.controller_service_account.as_str())
            && !self.controller_service_account.is_empty()
        {
            return true;
        }
        user.groups
            .iter()
            .any(|g| self.admin_groups.iter().any(|a| a == g))
    }

    fn describe_admins(&self) -> String {
        if self.admin_groups.is_empty() {
            "no admin groups are configured".to_owned()
        } else {
            format!("admin groups: {}", self.admin_groups.join(", "))
        }
    }
}

/// The validating decision for an Environment: UPDATE and DELETE only by its
/// owner (annotation `ephemeral.io/owner` of the old object) or an admin, and
/// only admins may change the owner. CREATE is allowed.
pub fn validate(review: &Review, access: &Access) -> Decision {
    let request = &review.request;
    if let Err(message) = check_kind(review) {
        return deny(request, Refusal::Malformed, message);
    }
    let verb = match request.operation {
        Operation::Update => "update",
        Operation::Delete => "delete",
        _ => return allow(request),
    };
    let Some(old) = &review.old_object else {
        return deny(
            request,
            Refusal::Malformed,
            format!(
                "request.oldObject: missing on {}. Fix: send the stored object as oldObject",
                verb.to_uppercase()
            ),
        );
    };
    if access.is_admin(&request.user_info) {
        return allow(request);
    }
    let user = username(request).unwrap_or("<anonymous>");
    let name = object_name(review);
    let field = format!("metadata.annotations[{OWNER_ANNOTATION}]");
    let owner = annotation(Some(old), OWNER_ANNOTATION).filter(|o| !o.is_empty());
    let Some(owner) = owner else {
        return deny(
            request,
            Refusal::Forbidden,
            format!(
                "{field}: Environment {name} has no owner, so only an admin may {verb} it ({}), and '{user}' is not one. Fix: ask an admin to {verb} it",
                access.describe_admins()
            ),
        );
    };
    if owner != user {
        return deny(
            request,
            Refusal::Forbidden,
            format!(
                "{field}: Environment {name} is owned by '{owner}'; only its owner or an admin ({}) may {verb} it, and '{user}' is neither. Fix: ask '{owner}' or an admin to {verb} it",
                access.describe_admins()
            ),
        );
    }
    if request.operation == Operation::Update {
        let new_owner = annotation(review.object.as_ref(), OWNER_ANNOTATION);
        if new_owner != Some(owner) {
            return deny(
                request,
                Refusal::Forbidden,
                format!(
                    "{field}: only an admin ({}) may change the owner of Environment {name} from '{owner}' to {}. Fix: keep {OWNER_ANNOTATION}: {owner}, or ask an admin to hand the Environment over",
                    access.describe_admins(),
                    new_owner.map_or_else(|| "nobody".to_owned(), |o| format!("'{o}'")),
                ),
            );
        }
    }
    allow(request)
}
