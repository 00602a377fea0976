//! Form metadata: which forms the sandbox knows, their field keys, kinds, captions and rules.
//! Form ids and field keys come from `shared/protocols/kingdee.md` §3; where the notes mark a
//! field ❌ (SEC_User, `BD_Empinfo.FMobile`, the GL_VOUCHER Save payload) the choice here is the
//! sandbox's own and is listed in `docs/sandbox.md`.

/// How a form behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// 基础资料: numbered by the caller (`FNumber`), unique number, Forbid/Enable.
    BaseData,
    /// 单据: numbered by the server (`FBillNo`, e.g. `FYBX000001`) unless given.
    Bill,
    /// Query-only views such as `STK_Inventory` (data set through the admin API).
    QueryOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Decimal,
    Integer,
    Date,
    Bool,
    /// Base-data reference, given as `{"FNumber": …}`, validated against the target form.
    Ref(&'static str),
    /// A reference to something the sandbox does not model (bill types, voucher groups):
    /// accepted and stored as given, not validated.
    Any,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub key: &'static str,
    pub caption: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct EntryDef {
    /// Field key used in Save (`FEntity`).
    pub key: &'static str,
    /// Entity name used in View output (`ER_ExpenseReimbEntry`).
    pub view_name: &'static str,
    pub caption: &'static str,
    pub fields: &'static [FieldDef],
    /// At least one row is required to save.
    pub required: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct FormDef {
    pub id: &'static str,
    pub caption: &'static str,
    pub kind: FormKind,
    /// The form's own primary-key field key (`FID` is always accepted too).
    pub pk: &'static str,
    /// The number field (`FNumber`, `FBillNo`, `FStaffNumber`, `FUserAccount`).
    pub number_field: &'static str,
    /// Bill-number prefix for bills (`FYBX`).
    pub bill_prefix: &'static str,
    pub name_field: Option<&'static str>,
    pub fields: &'static [FieldDef],
    pub entries: &'static [EntryDef],
    /// Debit/credit balance check (GL_VOUCHER).
    pub balanced: bool,
}

const fn f(key: &'static str, caption: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        key,
        caption,
        ty,
        required: false,
    }
}

const fn req(key: &'static str, caption: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        key,
        caption,
        ty,
        required: true,
    }
}

use FieldType::{Any, Bool, Date, Decimal, Integer, Ref, Text};

const ORG: FieldType = Ref("ORG_Organizations");
const DEPT: FieldType = Ref("BD_Department");
const EMP: FieldType = Ref("BD_Empinfo");
const CUR: FieldType = Ref("BD_Currency");

/// A customer extension field (扩展字段, protocol §3: custom keys look like `F_xxx`) that
/// carries the DingTalk approval instance a bill came from, on `ER_ExpReimbursement` and
/// `GL_VOUCHER`. View shows it under its own key (no `F` is dropped from `F_…` keys).
pub const DD_INSTANCE_FIELD: &str = "F_DDInstanceId";
/// Its caption.
pub const DD_INSTANCE_CAPTION: &str = "钉钉审批实例";

const fn simple_base(id: &'static str, caption: &'static str) -> FormDef {
    FormDef {
        id,
        caption,
        kind: FormKind::BaseData,
        pk: "FID",
        number_field: "FNumber",
        bill_prefix: "",
        name_field: Some("FName"),
        fields: SIMPLE_BASE_FIELDS,
        entries: &[],
        balanced: false,
    }
}

const SIMPLE_BASE_FIELDS: &[FieldDef] = &[
    req("FNumber", "编码", Text),
    req("FName", "名称", Text),
    f("FCreateOrgId", "创建组织", ORG),
    f("FUseOrgId", "使用组织", ORG),
    f("FDescription", "描述", Text),
];

pub static FORMS: &[FormDef] = &[
    FormDef {
        id: "BD_Department",
        caption: "部门",
        kind: FormKind::BaseData,
        pk: "FDEPTID",
        number_field: "FNumber",
        bill_prefix: "",
        name_field: Some("FName"),
        fields: &[
            req("FNumber", "编码", Text),
            req("FName", "名称", Text),
            req("FCreateOrgId", "创建组织", ORG),
            req("FUseOrgId", "使用组织", ORG),
            f("FParentID", "上级部门", DEPT),
            f("FFullName", "部门全称", Text),
            f("FHelpCode", "助记码", Text),
            f("FEffectDate", "生效日期", Date),
            f("FLapseDate", "失效日期", Date),
            f("FDescription", "描述", Text),
        ],
        entries: &[],
        balanced: false,
    },
    FormDef {
        id: "BD_Empinfo",
        caption: "员工",
        kind: FormKind::BaseData,
        pk: "FID",
        number_field: "FStaffNumber",
        bill_prefix: "",
        name_field: Some("FName"),
        fields: &[
            req("FName", "员工姓名", Text),
            req("FStaffNumber", "员工编号", Text),
            req("FCreateOrgId", "创建组织", ORG),
            req("FUseOrgId", "使用组织", ORG),
            f("FNumber", "编码", Text),
            f("FMobile", "移动电话", Text),
            f("FTel", "联系电话", Text),
            f("FEmail", "电子邮箱", Text),
            f("FDeptId", "所属部门", DEPT),
            f("FPostName", "职位", Text),
            f("FJoinDate", "入职日期", Date),
            f("FDescription", "描述", Text),
        ],
        entries: &[],
        balanced: false,
    },
    FormDef {
        id: "SEC_User",
        caption: "用户",
        kind: FormKind::BaseData,
        pk: "FUserID",
        number_field: "FUserAccount",
        bill_prefix: "",
        name_field: Some("FName"),
        fields: &[
            req("FUserAccount", "用户账号", Text),
            req("FName", "用户名称", Text),
            f("FPhone", "移动电话", Text),
            f("FEmail", "电子邮箱", Text),
            f("FDescription", "描述", Text),
        ],
        entries: &[],
        balanced: false,
    },
    FormDef {
        id: "BD_MATERIAL",
        caption: "物料",
        kind: FormKind::BaseData,
        pk: "FMATERIALID",
        number_field: "FNumber",
        bill_prefix: "",
        name_field: Some("FName"),
        fields: &[
            req("FNumber", "编码", Text),
            req("FName", "名称", Text),
            req("FCreateOrgId", "创建组织", ORG),
            req("FUseOrgId", "使用组织", ORG),
            f("FSpecification", "规格型号", Text),
            f("FBaseUnitId", "基本单位", Ref("BD_UNIT")),
            f("FSafeStock", "安全库存", Decimal),
            f("FDescription", "描述", Text),
        ],
        entries: &[],
        balanced: false,
    },
    FormDef {
        id: "ER_ExpenseRequest",
        caption: "费用申请单",
        kind: FormKind::Bill,
        pk: "FID",
        number_field: "FBillNo",
        bill_prefix: "FYSQ",
        name_field: None,
        fields: &[
            f("FBillNo", "单据编号", Text),
            f("FBillTypeID", "单据类型", Any),
            req("FDate", "申请日期", Date),
            req("FOrgID", "申请组织", ORG),
            req("FStaffID", "申请人", EMP),
            req("FDeptID", "申请部门", DEPT),
            f("FCurrencyID", "币别", CUR),
            f("FReason", "事由", Text),
            f("FIsBorrow", "是否借款", Bool),
            f("FExpectPayDate", "预计付款日期", Date),
        ],
        entries: &[EntryDef {
            key: "FEntity",
            view_name: "ER_ExpenseRequestEntry",
            caption: "明细信息",
            fields: &[
                req("FExpenseItemID", "费用项目", Ref("BD_Expense")),
                req("FOrgAmount", "申请金额", Decimal),
                f("FCheckedOrgAmount", "核定金额", Decimal),
                f("FEntryCostDeptID", "费用承担部门", DEPT),
                f("FRemark", "备注", Text),
            ],
            required: true,
        }],
        balanced: false,
    },
    FormDef {
        id: "ER_ExpReimbursement",
        caption: "费用报销单",
        kind: FormKind::Bill,
        pk: "FID",
        number_field: "FBillNo",
        bill_prefix: "FYBX",
        name_field: None,
        fields: &[
            f("FBillNo", "单据编号", Text),
            f("FBillTypeID", "单据类型", Any),
            req("FDate", "申请日期", Date),
            req("FOrgID", "申请组织", ORG),
            req("FProposerID", "申请人", EMP),
            req("FRequestDeptID", "申请部门", DEPT),
            f("FExpenseDeptID", "费用承担部门", DEPT),
            f("FCurrencyID", "币别", CUR),
            f("FExpAmountSum", "费用金额合计", Decimal),
            f("FCausa", "事由", Text),
            f("FCONTACTUNITTYPE", "往来单位类型", Text),
            f("FCONTACTUNIT", "往来单位", Any),
            f("FRecInvInfo", "收票信息", Text),
            f(DD_INSTANCE_FIELD, DD_INSTANCE_CAPTION, Text),
        ],
        entries: &[EntryDef {
            key: "FEntity",
            view_name: "ER_ExpenseReimbEntry",
            caption: "明细信息",
            fields: &[
                req("FExpID", "费用项目", Ref("BD_Expense")),
                req("FExpenseAmount", "费用金额", Decimal),
                f("FInvoiceType", "发票类型", Text),
                f("FExpenseDeptEntryID", "费用承担部门", DEPT),
                f("FRemark", "备注", Text),
            ],
            required: true,
        }],
        balanced: false,
    },
    FormDef {
        id: "GL_VOUCHER",
        caption: "凭证",
        kind: FormKind::Bill,
        pk: "FVoucherID",
        number_field: "FBillNo",
        bill_prefix: "PZ",
        name_field: None,
        fields: &[
            f("FBillNo", "凭证号", Text),
            req("FDate", "日期", Date),
            f("FYear", "会计年度", Integer),
            f("FPeriod", "期间", Integer),
            f("FAccountBookID", "账簿", Any),
            f("FVoucherGroupID", "凭证字", Any),
            f("FAttachments", "附件数", Integer),
            f(DD_INSTANCE_FIELD, DD_INSTANCE_CAPTION, Text),
        ],
        entries: &[EntryDef {
            key: "FEntity",
            view_name: "VoucherEntry",
            caption: "分录",
            fields: &[
                req("FExplanation", "摘要", Text),
                req("FAccountID", "科目编码", Ref("BD_Account")),
                f("FDebit", "借方金额", Decimal),
                f("FCredit", "贷方金额", Decimal),
                f("FCurrencyID", "币别", CUR),
                f("FExchangeRate", "汇率", Decimal),
            ],
            required: true,
        }],
        balanced: true,
    },
    FormDef {
        id: "STK_Inventory",
        caption: "即时库存",
        kind: FormKind::QueryOnly,
        pk: "FID",
        number_field: "FID",
        bill_prefix: "",
        name_field: None,
        fields: &[
            f("FMaterialId", "物料", Ref("BD_MATERIAL")),
            f("FStockId", "仓库", Ref("BD_STOCK")),
            f("FStockOrgId", "库存组织", ORG),
            f("FLot", "批号", Text),
            f("FQty", "库存量(库存单位)", Decimal),
            f("FBaseQty", "库存量(基本单位)", Decimal),
            f("FAVBQty", "可用量", Decimal),
            f("FBaseUnitId", "基本单位", Ref("BD_UNIT")),
            f("FProduceDate", "生产日期", Date),
            f("FExpiryDate", "有效期至", Date),
        ],
        entries: &[],
        balanced: false,
    },
    simple_base("ORG_Organizations", "组织机构"),
    simple_base("BD_UNIT", "计量单位"),
    simple_base("BD_Currency", "币别"),
    simple_base("BD_Expense", "费用项目"),
    simple_base("BD_Account", "科目"),
    simple_base("BD_STOCK", "仓库"),
];

/// Form ids are matched case-insensitively (`BD_Material` in the SDK sample, `BD_MATERIAL`
/// in the manual).
pub fn form(id: &str) -> Option<&'static FormDef> {
    FORMS.iter().find(|f| f.id.eq_ignore_ascii_case(id.trim()))
}

impl FormDef {
    pub fn field(&self, key: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.key.eq_ignore_ascii_case(key))
    }

    pub fn entry(&self, key: &str) -> Option<&'static EntryDef> {
        self.entries
            .iter()
            .find(|e| e.key.eq_ignore_ascii_case(key) || e.view_name.eq_ignore_ascii_case(key))
    }

    /// Finds an entry field by key, in any entry of the form.
    pub fn entry_field(&self, key: &str) -> Option<(&'static EntryDef, &'static FieldDef)> {
        self.entries.iter().find_map(|e| {
            e.fields
                .iter()
                .find(|f| f.key.eq_ignore_ascii_case(key))
                .map(|f| (e, f))
        })
    }

    pub fn is_pk(&self, key: &str) -> bool {
        key.eq_ignore_ascii_case("FID") || key.eq_ignore_ascii_case(self.pk)
    }

    pub fn has_status(&self) -> bool {
        self.kind != FormKind::QueryOnly
    }
}

/// The View property name of a field key: the leading `F` dropped when an upper-case letter
/// follows (`FName` → `Name`, `FDeptId` → `DeptId`); custom keys (`F_ABC_x`) stay as they are
/// (protocol §2.2: View returns object property names, often without the `F` prefix).
pub fn view_name(key: &str) -> String {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some('F'), Some(c)) if c.is_ascii_uppercase() => key[1..].to_owned(),
        _ => key.to_owned(),
    }
}
