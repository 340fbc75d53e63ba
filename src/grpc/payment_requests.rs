//! PaymentRequestService: the contract is final; the capability arrives with payment requests
//! and payment providers.

use super::Api;
use super::later::service_with_later_rpcs;
use crate::proto;

service_with_later_rpcs! {
    impl proto::payment_request_service_server::PaymentRequestService for Api {
        later("the payment requests capability") {
            create_payment_request(CreatePaymentRequestRequest) -> CreatePaymentRequestResponse;
            get_payment_request(GetPaymentRequestRequest) -> GetPaymentRequestResponse;
            list_payment_requests(ListPaymentRequestsRequest) -> ListPaymentRequestsResponse;
            cancel_payment_request(CancelPaymentRequestRequest) -> CancelPaymentRequestResponse;
            record_payment_result(RecordPaymentResultRequest) -> RecordPaymentResultResponse;
        }
    }
}
