//! Kingdee Cloud Galaxy (金蝶云星空 / K3Cloud) client: v8 signature headers, LoginBySign and
//! LoginByAppSecret, one sliding session per connection, every DynamicFormService operation, the
//! response envelope, and the SSO link signer. It knows nothing about flows or the store.
